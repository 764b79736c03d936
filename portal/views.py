from flask import Blueprint, render_template

bp = Blueprint("portal", __name__, url_prefix="/portal")


@bp.get("/")
def home():
    return render_template("base.html")

from flask import Blueprint, render_template

bp = Blueprint("shop", __name__)


@bp.get("/")
def catalogue():
    return render_template("base.html")


@bp.get("/estimate")
def estimate():
    return render_template("base.html")

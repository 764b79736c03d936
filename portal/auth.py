from flask import Blueprint, render_template

bp = Blueprint("auth", __name__)


@bp.get("/login")
def login():
    return render_template("base.html")


@bp.get("/signup")
def signup():
    return render_template("base.html")


@bp.post("/logout")
def logout():
    return render_template("base.html")


from billing.models import User  # noqa: E402
from common.extensions import db, login_manager  # noqa: E402


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))

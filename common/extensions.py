"""Extensions are created here unbound and bound in create_app (init_app)."""

from flask_babel import Babel
from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from billing.models import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
htmx = HTMX()
# Storage comes from RATELIMIT_STORAGE_URI (memory by default, Redis in production).
limiter = Limiter(key_func=get_remote_address, default_limits=[])

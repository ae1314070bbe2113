"""Access control: users, groups and API keys from a TOML file, passwords, login sessions.

Sans-IO throughout (time is an argument); the REST endpoints (``octotrio.rest``) and the push
sessions (``octotrio.push``) are its adapters.
"""

from ._access import MAX_LOGIN_SESSIONS as MAX_LOGIN_SESSIONS
from ._access import AccessControl as AccessControl
from ._access import FailedLoginLimiter as FailedLoginLimiter
from ._access import Principal as Principal
from ._access import ReauthListener as ReauthListener
from ._config import GLOBAL_KEY_USER as GLOBAL_KEY_USER
from ._config import AccessConfig as AccessConfig
from ._config import ConfigError as ConfigError
from ._config import UserRecord as UserRecord
from ._config import load_config as load_config
from ._config import new_api_key as new_api_key
from ._config import save_config as save_config
from ._origin import same_origin as same_origin
from ._passwords import hash_password as hash_password
from ._passwords import verify_password as verify_password
from ._permissions import BUILTIN_PERMISSIONS as BUILTIN_PERMISSIONS
from ._permissions import PERMISSION_KEYS as PERMISSION_KEYS
from ._permissions import default_group_permissions as default_group_permissions

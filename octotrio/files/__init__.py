"""The ``local`` file storage: G-code uploads in a data directory, their paths and their analysis."""

from ._analysis import GcodeAnalyzer as GcodeAnalyzer
from ._paths import GCODE_EXTENSIONS as GCODE_EXTENSIONS
from ._paths import InvalidPath as InvalidPath
from ._paths import is_gcode_name as is_gcode_name
from ._paths import join_path as join_path
from ._paths import normalize_folder as normalize_folder
from ._paths import validate_file_path as validate_file_path
from ._store import FileStore as FileStore
from ._store import StoredFile as StoredFile
from ._store import StoredFileReader as StoredFileReader
from ._store import StoredFolder as StoredFolder
from ._store import Upload as Upload
from ._store import open_file_store as open_file_store
from ._store import temporary_file_store as temporary_file_store

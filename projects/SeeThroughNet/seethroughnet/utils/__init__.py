from .atomic import atomic_path, check_writable_dir

__all__ = ["atomic_path", "check_writable_dir"]

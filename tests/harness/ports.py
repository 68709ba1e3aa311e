"""A free TCP port on 127.0.0.1 for a server a test starts itself (the OS picks it; the small race
until the server binds it is accepted, as every test here starts its servers one at a time)."""
import socket


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

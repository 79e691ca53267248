"""``python -m heron_prober`` / ``heron-prober``."""

from heron_common import service
from heron_prober.app import create_app


def main() -> None:
    service.run("prober", create_app, lambda s: s.prober_port)


if __name__ == "__main__":
    main()

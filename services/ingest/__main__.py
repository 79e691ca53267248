"""``python -m heron_ingest`` / ``heron-ingest``."""

from heron_common import service
from heron_ingest.app import create_app


def main() -> None:
    service.run("ingest", create_app, lambda s: s.ingest_port)


if __name__ == "__main__":
    main()

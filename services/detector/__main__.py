"""``python -m heron_detector`` / ``heron-detector``."""

from heron_common import service
from heron_detector.app import create_app


def main() -> None:
    service.run("detector", create_app, lambda s: s.detector_port)


if __name__ == "__main__":
    main()

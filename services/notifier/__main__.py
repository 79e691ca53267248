"""``python -m heron_notifier`` / ``heron-notifier``."""

from heron_common import service
from heron_notifier.app import create_app


def main() -> None:
    service.run("notifier", create_app, lambda s: s.notifier_port)


if __name__ == "__main__":
    main()

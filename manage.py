#!/usr/bin/env python
"""Django's command-line utility for the gateway."""
import sys


def main() -> None:
    from proxy_site.settings import use_these_settings

    use_these_settings()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

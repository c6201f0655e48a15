"""Security (issue 19, item 14): a PostgreSQL password given in the store URL is never printed."""

from __future__ import annotations

import pytest

from gearshift.cli import main
from gearshift.errors import ConfigError
from gearshift.store.postgres import open_pool, redact
from support.fake_upstream import closed_port
from support.services import pg_schema

SECRET = "hunter2-store-password"


def test_redact_hides_a_password_in_the_user_part_and_in_the_query() -> None:
    for url in (f"postgresql://u:{SECRET}@db/x", f"postgresql://u@db/x?password={SECRET}&sslmode=disable",
                f"postgres://u@db/x?sslpassword={SECRET}"):
        assert SECRET not in redact(url) and "***" in redact(url)
    assert redact("postgresql://u@db/x?schema=s") == "postgresql://u@db/x?schema=s"


def test_connection_errors_and_gearshift_decisions_never_print_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError) as err:
        open_pool(f"postgresql://u@127.0.0.1:{closed_port()}/x?password={SECRET}", connect_timeout_s=1)
    assert SECRET not in str(err.value)
    with pg_schema() as url:
        assert main(["decisions", "--store-url", f"{url}&password={SECRET}"]) == 0
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err

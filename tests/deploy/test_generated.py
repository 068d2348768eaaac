"""The files written from the service catalogue (make generate) are up to date, and the region
mechanism that writes inside hand-written files keeps everything around its regions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from relayshop_devtools.generate import compose, kubernetes, regions, stale
from relayshop_platform.catalogue import AUTH, CATALOGUE, Service, with_gateway
from relayshop_platform.roles import Role

ROOT = Path(__file__).resolve().parents[2]


def test_every_generated_file_is_up_to_date() -> None:
    out_of_date = [str(path.relative_to(ROOT)) for path in stale(ROOT)]
    assert out_of_date == [], f"out of date: {out_of_date}; run: make generate"


TEXT = """\
before: 1
  # >>> make generate: things
  old: 1
  # <<< make generate: things
after: 2
"""


def test_a_region_is_rewritten_and_the_rest_is_kept() -> None:
    filled = regions.fill(TEXT, {"things": "  new: 1\n  newer: 2\n"}, "text")
    assert filled == TEXT.replace("  old: 1\n", "  new: 1\n  newer: 2\n")
    assert regions.fill(filled, {"things": "  new: 1\n  newer: 2\n"}, "text") == filled
    assert regions.fill(TEXT, {"things": ""}, "text") == TEXT.replace("  old: 1\n", "")


@pytest.mark.parametrize(
    ("text", "bodies", "message"),
    [
        (TEXT, {"other": "x: 1\n"}, "regions ['things'] in the file"),
        (TEXT, {"things": "", "other": ""}, "bodies for ['other', 'things']"),
        (TEXT.replace("# <<< make generate: things", "# end"), {"things": ""}, "not closed"),
        (TEXT + TEXT, {"things": ""}, "regions ['things', 'things']"),
    ],
)
def test_a_region_that_does_not_match_its_bodies_is_an_error(
    text: str, bodies: dict[str, str], message: str
) -> None:
    with pytest.raises(regions.RegionError, match=message.replace("[", r"\[")):
        regions.fill(text, bodies, "text")


SHIPPING = Service(
    "shipping", 8005, "/api/shipping", tables=True, calls=(AUTH, "inventory"),
    writers=(Role.ADMIN,),
)  # fmt: skip
NOTIFY = Service("notify", 8006, "/api/notify", tables=False, calls=(AUTH,))


def test_a_new_service_is_in_every_part_of_compose() -> None:
    files = compose.outputs(ROOT, with_gateway((*CATALOGUE[1:], SHIPPING, NOTIFY)))
    services = yaml.safe_load(files[ROOT / "docker-compose.yml"])["services"]
    shipping, notify = services["shipping"], services["notify"]
    assert shipping["build"]["args"] == {"SERVICE": "shipping", "PORT": 8005}
    assert shipping["read_only"] is True and shipping["cap_drop"] == ["ALL"]  # the anchor's
    assert shipping["environment"]["RELAYSHOP_INVENTORY_URL"] == "http://inventory:8004"
    assert "@postgres:5432/shipping" in shipping["environment"]["DATABASE_URL"]
    assert "migrate shipping && exec uvicorn shipping_service.main" in shipping["command"][2]
    assert set(shipping["depends_on"]) == {"auth", "postgres", "redis"}
    # Without tables: no migration, no database.
    assert "command" not in notify and "DATABASE_URL" not in notify["environment"]
    assert set(notify["depends_on"]) == {"auth", "redis"}

    gateway = services["gateway"]
    assert gateway["environment"]["RELAYSHOP_SHIPPING_URL"] == "http://shipping:8005"
    assert {"shipping", "notify"} <= set(gateway["depends_on"])
    auth = services["auth"]["environment"]
    assert {"RELAYSHOP_SHIPPING_CLIENT_SECRET", "RELAYSHOP_NOTIFY_CLIENT_SECRET"} <= set(auth)
    assert "SHIPPING_DB_PASSWORD" in services["postgres"]["environment"]
    assert "NOTIFY_DB_PASSWORD" not in services["postgres"]["environment"]
    command = services["redis"]["command"]
    users = [command[i + 1] for i, arg in enumerate(command) if arg == "--user"]
    assert users[-2:] == ["shipping", "notify"]

    override = yaml.safe_load(files[ROOT / "compose.override.yml"])["services"]
    assert override["shipping"]["ports"] == ["127.0.0.1:8005:8005"]
    assert "RELAYSHOP_MIGRATE_ON_START" not in override["notify"]["environment"]
    init = files[ROOT / "deploy/postgres/init-databases.sh"]
    assert 'create_service_database shipping "$SHIPPING_DB_PASSWORD"' in init
    assert "notify" not in init


def test_only_a_generated_manifest_of_a_service_taken_out_is_a_leftover(tmp_path: Path) -> None:
    base = tmp_path / "deploy/k8s/base"
    base.mkdir(parents=True)
    (base / "orders.yaml").write_text(kubernetes.GENERATED + "kind: Deployment\n")  # listed
    (base / "billing.yaml").write_text(kubernetes.GENERATED + "kind: Deployment\n")  # taken out
    (base / "extra.yaml").write_text("# written by hand\nkind: ConfigMap\n")  # not ours
    assert kubernetes.leftovers(tmp_path, CATALOGUE) == [base / "billing.yaml"]

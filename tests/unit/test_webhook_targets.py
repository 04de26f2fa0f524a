"""Issue 19, point 17: webhooks never point inside the network unless the operator says so."""

from __future__ import annotations

import pytest

from core.notify import targets
from core.notify.delivery import shown_error

INTERNAL = [
    "http://169.254.169.254/latest/meta-data/",
    "http://0x7f.1/",
    "http://2130706433/",
    "http://017700000001/",
    "http://127.1:8080/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[fe80::1]/",
    "http://10.0.0.5/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
]


@pytest.fixture(autouse=True)
def no_allowance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(targets.ALLOW_PRIVATE_ENV, raising=False)


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_literal_addresses_are_refused_when_saved(url: str) -> None:
    with pytest.raises(targets.TargetError, match="internal address"):
        targets.check_saved(url)


@pytest.mark.parametrize("url", INTERNAL)
def test_the_operator_may_allow_internal_receivers(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(targets.ALLOW_PRIVATE_ENV, "1")
    targets.check_saved(url)


def test_public_addresses_and_names_are_accepted_when_saved() -> None:
    targets.check_saved("https://93.184.216.34/hook")
    targets.check_saved("https://hooks.example.com/services/T0/B0")  # names are checked when delivering


def test_a_name_resolving_inside_is_refused_when_delivering() -> None:
    with pytest.raises(targets.TargetError, match="internal address"):
        targets.resolve("http://localhost:8080/hook")


def test_delivery_connects_to_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]])
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: next(answers))  # a second lookup would fail
    target = targets.resolve("https://hooks.example.com/a?b=1")
    assert (target.address, target.host, target.port, target.path) == (
        "93.184.216.34",
        "hooks.example.com",
        443,
        "/a?b=1",
    )


def test_viewers_see_the_kind_of_a_delivery_error_not_the_network_detail() -> None:
    raw = "ConnectionRefusedError: [Errno 111] Connection refused (10.0.0.7:6379)"
    assert shown_error(raw) == "could not deliver"
    assert shown_error("HTTP 503") == "HTTP 503"
    assert shown_error("TimeoutError: timed out: no complete answer within 15 s") == "no answer in time"


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://0x7f.1/", "http://2130706433/", "http://[::1]/"])
def test_a_budget_with_an_internal_webhook_is_refused_naming_the_field(url: str) -> None:
    from core.budgets import service

    with pytest.raises(service.BudgetError, match="^webhook: .*internal address"):
        service.validate("team", "1", "month", webhook_url=url)

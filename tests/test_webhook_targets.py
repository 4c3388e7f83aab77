"""Where a webhook may go (plutomi/targets.py): URLs are checked against server-side request
forgery when an endpoint is saved and again at every delivery, and the connection goes to the
address that was checked. DNS is simulated by replacing socket.getaddrinfo; a name it does not
know is looked up for real (the database's and Redis's hosts), except the test's own names."""

from __future__ import annotations

import socket

import pytest

from plutomi import targets
from plutomi.models import OutboxState
from plutomi.services import outbox, webhooks
from plutomi.services.errors import Invalid, InvalidFields
from tests.conftest import owner_membership
from tests.test_webhooks import add_endpoint, deliveries, delivery

PUBLIC = "93.184.215.14"
PUBLIC_V6 = "2606:2800:220:1::1"
REAL_GETADDRINFO = socket.getaddrinfo


class FakeDNS:
    """socket.getaddrinfo for the test's host names: each lookup of a name takes its next
    answer (the last one repeats), and is counted."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def answer(self, host: str, *answers: list[str]) -> None:
        self.answers[host] = list(answers)

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name in self.answers:
            self.lookups.append(name)
            queue = self.answers[name]
            addresses = queue.pop(0) if len(queue) > 1 else queue[0]
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port or 0, 0, 0))
                if ":" in a
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0))
                for a in addresses
            ]
        if name and name.endswith((".test", ".example.com")):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return REAL_GETADDRINFO(host, port, family, type, proto, flags)


@pytest.fixture
def dns(monkeypatch) -> FakeDNS:
    fake = FakeDNS()
    fake.answer("hooks.example.com", [PUBLIC])
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def refused(url: str) -> str:
    with pytest.raises(Invalid) as info:
        targets.check(url, allow_private=False)
    assert info.value.field == "url"
    return info.value.message


# --- addresses ---------------------------------------------------------------------------------

PRIVATE_HOSTS = [
    # loopback
    "127.0.0.1",
    "127.10.20.30",
    "[::1]",
    "localhost",
    "2130706433",  # 127.0.0.1 as one number
    "127.1",
    # private
    "10.0.0.1",
    "10.255.255.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "[fc00::1]",
    "[fd12:3456:789a::1]",
    # link-local, the cloud metadata address among them
    "169.254.169.254",
    "169.254.0.1",
    "[fe80::1]",
    # shared address space (carrier-grade NAT)
    "100.64.0.1",
    "100.127.255.254",
    # unspecified
    "0.0.0.0",
    "0",
    "[::]",
    # multicast and broadcast
    "224.0.0.1",
    "239.255.255.250",
    "[ff02::1]",
    "255.255.255.255",
    # reserved
    "240.0.0.1",
    "198.18.0.1",
    # IPv4 inside IPv6: mapped, NAT64 and 6to4
    "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[::ffff:10.0.0.1]",
    "[64:ff9b::a9fe:a9fe]",
    "[64:ff9b::7f00:1]",
    "[2002:7f00:1::1]",
    "[2002:a00:1::]",
]


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_a_private_or_reserved_address_is_refused(dns, host):
    message = refused(f"http://{host}/hooks")
    assert "private or reserved address" in message
    assert "only to public addresses" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost", "10.0.0.1"])
def test_allow_private_lets_a_self_hoster_use_their_own_network(dns, host):
    url = f"http://{host}:8080/hooks"
    assert targets.check(url, allow_private=True) == url


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["::1"],
        ["::ffff:192.168.1.1"],
        [PUBLIC, "10.0.0.5"],  # one good answer does not excuse a bad one
        [PUBLIC_V6, "fe80::1"],
        ["192.168.1.1", PUBLIC],
    ],
)
def test_a_host_name_that_resolves_to_a_private_address_is_refused(dns, addresses):
    dns.answer("internal.example.test", addresses)
    message = refused("https://internal.example.test/hooks")
    assert message.startswith("internal.example.test resolves to ")
    assert "private or reserved" in message


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/plutomi",
        "http://hooks.example.com:8443/in?source=plutomi",
        f"https://{PUBLIC}/hooks",
        f"https://[{PUBLIC_V6}]:8443/hooks",
        "https://[64:ff9b::5db8:d70e]/hooks",  # NAT64 of a public address
        "https://dual.example.test/hooks",
    ],
)
def test_a_public_address_is_accepted(dns, url):
    dns.answer("dual.example.test", [PUBLIC, PUBLIC_V6])
    assert targets.check(f"  {url} ", allow_private=False) == url


def test_a_host_that_does_not_resolve_is_refused(dns):
    message = refused("https://nowhere.example.test/hooks")
    assert message.startswith("The host nowhere.example.test could not be found")
    dns.answer("empty.example.test", [])
    assert refused("https://empty.example.test/") == "The host empty.example.test has no address."


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "Enter the URL"),
        ("   ", "Enter the URL"),
        ("ftp://hooks.example.com/x", "Use an http:// or https:// URL."),
        ("file:///etc/passwd", "Use an http:// or https:// URL."),
        ("gopher://hooks.example.com:70/_x", "Use an http:// or https:// URL."),
        ("javascript:alert(1)", "Use an http:// or https:// URL."),
        ("hooks.example.com/no-scheme", "Use an http:// or https:// URL."),
        ("http://user:secret@hooks.example.com/x", "Leave credentials out"),
        ("https://token@hooks.example.com/x", "Leave credentials out"),
        ("http://hooks.example.com:99999/x", "not a number from 1 to 65535"),
        ("http://hooks.example.com:0/x", "not a number from 1 to 65535"),
        ("http://hooks.example.com:-1/x", "not a number from 1 to 65535"),
        ("http://hooks.example.com:http/x", "not a number from 1 to 65535"),
        ("http:///path-only", "no host name"),
        ("http://hooks.example.com/a b", "spaces or control characters"),
        ("http://hooks.example.com/\r\nX-Injected: 1", "spaces or control characters"),
        ("https://hooks.example.com/" + "x" * 2000, "at most 2000 characters"),
    ],
)
def test_urls_that_are_not_plain_http_to_a_host_are_refused(dns, url, reason):
    assert reason in refused(url)


def test_parse_keeps_the_path_and_query_and_builds_the_host_header():
    target = targets.parse("https://Hooks.Example.com./in?a=1&b=2")
    assert target == targets.Target("https", "hooks.example.com", 443, "/in?a=1&b=2")
    assert target.host_header == "hooks.example.com"
    assert targets.parse("http://hooks.example.com").path == "/"
    assert targets.parse("http://hooks.example.com:8080/").host_header == "hooks.example.com:8080"
    assert targets.parse(f"https://[{PUBLIC_V6}]:8443/").host_header == f"[{PUBLIC_V6}]:8443"
    assert targets.parse(f"http://[{PUBLIC_V6}]/").host_header == f"[{PUBLIC_V6}]"


# --- the same checks where endpoints are saved and delivered -----------------------------------


@pytest.fixture
def app(make_app):
    """As deployed: webhooks go to public addresses only."""
    return make_app(ALLOW_PRIVATE_WEBHOOK_TARGETS=False)


@pytest.fixture
def org(make_org):
    return make_org("Acme")


def test_an_endpoint_to_a_private_address_cannot_be_saved(org, dns):
    with pytest.raises(InvalidFields) as info:
        webhooks.create_endpoint(
            owner_membership(org),
            webhooks.EndpointInput(
                url="http://169.254.169.254/latest/meta-data/", event_types=("applicant.moved",)
            ),
        )
    assert "private or reserved" in info.value.errors["url"]
    endpoint = add_endpoint(org, "https://hooks.example.com/in", "applicant.moved")
    with pytest.raises(InvalidFields) as info:
        webhooks.update_endpoint(
            owner_membership(org),
            endpoint.public_id,
            webhooks.EndpointInput(url="http://[::1]:8080/", event_types=("applicant.moved",)),
        )
    assert "private or reserved" in info.value.errors["url"]
    assert [e.url for e in webhooks.endpoints(org.id)] == ["https://hooks.example.com/in"]


def test_a_host_that_resolves_private_at_delivery_is_not_called(org, dns, webhook_receiver):
    # Saved while its name pointed at a public address; now it points at this machine.
    host = f"hooks.example.test:{webhook_receiver.port}"
    dns.answer("hooks.example.test", [PUBLIC], ["127.0.0.1"])
    endpoint = add_endpoint(org, f"http://{host}/hooks", "applicant.moved")
    row = webhooks.send_test(owner_membership(org), endpoint.public_id)

    assert outbox.deliver([row.id]) == {"done": 0, "retrying": 1, "dead": 0}
    failed = delivery(row.id)
    assert failed.state == OutboxState.RETRYING
    assert failed.last_error.startswith("Refused: hooks.example.test resolves to 127.0.0.1")
    assert failed.response_status is None
    assert webhook_receiver.requests == []
    assert dns.lookups == ["hooks.example.test"] * 2  # at saving, and again at delivery


def test_the_connection_goes_to_the_address_that_was_checked(
    make_app, make_org, dns, webhook_receiver, monkeypatch
):
    """No second lookup between the check and the connection: a name that answers
    differently the next time (DNS rebinding) cannot steer the request elsewhere."""
    private = make_app(ALLOW_PRIVATE_WEBHOOK_TARGETS=True)  # the receiver is on 127.0.0.1
    port = webhook_receiver.port
    connected: list[tuple] = []
    real_connect = socket.create_connection

    def connect(address, *args, **kwargs):
        connected.append(address)
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    with private.test_request_context():
        org = make_org("Self-hosted")
        dns.answer("hooks.example.test", ["127.0.0.1"])
        endpoint = add_endpoint(org, f"http://hooks.example.test:{port}/in?x=1", "opening.closed")
        # The delivery's own lookup answers 127.0.0.1; any later one, where nothing listens.
        dns.answer("hooks.example.test", ["127.0.0.1"], ["127.0.0.2"])
        dns.lookups.clear()
        row = webhooks.send_test(owner_membership(org), endpoint.public_id)
        assert outbox.deliver([row.id])["done"] == 1
        assert [r.state for r in deliveries(endpoint)] == [OutboxState.DONE]

    (request,) = webhook_receiver.requests
    assert request.headers["host"] == f"hooks.example.test:{port}"
    assert request.path == "/in?x=1"
    assert dns.lookups == ["hooks.example.test"]
    assert connected == [("127.0.0.1", port)]

"""
A node: the service tree that C{twistd scheduler0} runs.

Children start in the order they are added and stop in reverse, one after the other, so
the HTTP site stops taking requests before the command log drains, and the database is
closed last.
"""

from __future__ import annotations

from typing import Any

from twisted.application import strports
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from .api.app import Api, ApiSettings
from .api.auth import Authenticator
from .api.site import make_site
from .config import Config
from .consensus.local import LocalCommandLog
from .node_secrets import NodeSecrets
from .store.service import StoreService

log = Logger()


class SequentialMultiService(MultiService):
    """A MultiService whose children stop in reverse order, each after the previous one."""

    def stopService(self) -> Deferred:
        self.running = 0
        children = list(self)[::-1]

        async def stop_all() -> None:
            for child in children:
                try:
                    await maybeDeferred(child.stopService)
                except Exception:
                    log.failure("stopping {name} failed", name=getattr(child, "name", child))

        from twisted.internet.defer import ensureDeferred
        return ensureDeferred(stop_all())


def http_endpoint(config: Config) -> str:
    """The strports description of the API listener."""
    interface = config.host.replace(":", "\\:")
    if config.protocol == "https":
        return (f"ssl:port={config.port}:interface={interface}:"
                f"privateKey={config.tls_key_file}:certKey={config.tls_cert_file}")
    return f"tcp:port={config.port}:interface={interface}"


def build_node(config: Config, node_secrets: NodeSecrets, reactor: Any) -> SequentialMultiService:
    """Assemble a single node's service tree from validated config."""
    node = SequentialMultiService()

    store = StoreService(config.data_dir)
    store.open()
    store.setName("store")
    store.setServiceParent(node)

    commands = LocalCommandLog(store.path, reactor, node_id=config.node_id,
                               address=config.advertised_raft_address())
    commands.setName("commands")
    commands.setServiceParent(node)

    def reader():  # type: ignore[no-untyped-def]
        assert store.reader is not None, "the store is not open"
        return store.reader

    api = Api(
        reader=reader,
        commands=commands,
        clock=reactor,
        authenticator=Authenticator(reader, node_secrets.auth_username,
                                    node_secrets.auth_password),
        settings=ApiSettings(node_id=config.node_id,
                             default_misfire_grace=config.misfire_grace_seconds,
                             apply_timeout=config.raft_apply_timeout),
    )
    site = make_site(api.resource(), int(config.max_request_body_mb * 1024 * 1024))
    http = strports.service(http_endpoint(config), site)
    http.setName("http")
    http.setServiceParent(node)
    node.api = api  # type: ignore[attr-defined]
    return node


def child(node: MultiService, name: str) -> IService:
    return node.getServiceNamed(name)

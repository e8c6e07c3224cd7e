from tests.cards.nodetools import node_modules  # noqa: F401 - fixture

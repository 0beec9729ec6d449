"""The soak test runs `tickerctl up` with the supervisor tests' process fixture."""

from tests.supervisor.conftest import procs  # noqa: F401

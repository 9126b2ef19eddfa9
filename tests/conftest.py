import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    """The core and the memory backend run on both event loops anyio supports."""
    return request.param

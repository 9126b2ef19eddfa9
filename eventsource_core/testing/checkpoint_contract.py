"""What every CheckpointRepository must do."""

from __future__ import annotations

from uuid import uuid4

import pytest

from ..checkpoints import CheckpointRepository


class CheckpointRepositoryContract:
    """Needs a ``checkpoint_repo`` fixture yielding an empty repository."""

    @pytest.mark.anyio
    async def test_unknown_projection_has_no_checkpoint(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        assert await checkpoint_repo.get_checkpoint("Nobody") is None
        assert await checkpoint_repo.get_position("Nobody") is None
        assert await checkpoint_repo.get_lag_metrics("Nobody") is None

    @pytest.mark.anyio
    async def test_save_position_never_moves_backwards(
        self, checkpoint_repo: CheckpointRepository
    ) -> None:
        first, second = uuid4(), uuid4()
        await checkpoint_repo.save_position("P", 3, first, "A")
        await checkpoint_repo.save_position("P", 2, second, "B")
        assert await checkpoint_repo.get_position("P") == 3
        assert await checkpoint_repo.get_checkpoint("P") == first

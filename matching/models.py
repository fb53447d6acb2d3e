from django.db import models


class ShardLease(models.Model):
    """One row per shard, locked by every settlement transaction of the shard until it ends (the
    order UPDATE joins it, which share-locks it; a batch without order rows reads it FOR UPDATE).

    A process that has just taken the shard's lock locks this row before it reads the books, so it
    waits for a commit the previous holder may still have under way and rebuilds from what that
    commit wrote. See matching/worker.py (fencing).
    """

    shard = models.PositiveSmallIntegerField(primary_key=True)

    def __str__(self) -> str:
        return f"shard {self.shard}"

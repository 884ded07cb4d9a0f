"""The review queue over the real bus: oldest first, a page at a time.

The SLA (due three working days later, overdue once past it) is pinned with a moved clock in
tests/review/test_handlers.py; here the machine's clock runs, so no duration is asserted.
"""

from __future__ import annotations

from singlewindow.contracts import review
from singlewindow.contracts.review import TaskList

from tests.integration.test_registration_rules import submit
from tests.support.identifiers import application
from tests.support.platform import Bus, eventually


async def test_tasks_come_oldest_first_a_page_at_a_time(nats_bus: Bus, reviewer: str) -> None:
    mine = [(await submit(nats_bus, application())).application_id for _ in range(3)]

    async def everything() -> TaskList | None:
        listed: TaskList = await nats_bus.call(review.LIST_TASKS, {"token": reviewer, "limit": 500})
        found = {t.application_id for t in listed.tasks}
        return listed if set(mine) <= found else None

    all_open = await eventually(everything)
    assert [t.application_id for t in all_open.tasks if t.application_id in mine] == mine
    first: TaskList = await nats_bus.call(review.LIST_TASKS, {"token": reviewer, "limit": 2})
    second: TaskList = await nats_bus.call(
        review.LIST_TASKS, {"token": reviewer, "limit": 2, "offset": 2}
    )
    assert [t.task_id for t in first.tasks + second.tasks] == [
        t.task_id for t in all_open.tasks[:4]
    ]
    assert all(task.due_by > task.created_at for task in all_open.tasks)

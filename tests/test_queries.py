"""Set-based work: the number of queries does not grow with the number of objects."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from todo.models import Project, Task

pytestmark = pytest.mark.django_db


def count_queries(func):
    with CaptureQueriesContext(connection) as queries:
        func()
    return len(queries)


def push_tasks(sync, n, prefix):
    items = [{"id": f"{prefix}{i}", "name": f"t{i}", "project": "P"} for i in range(n)]
    return lambda: sync.push("taskUpdates", items)


def test_a_pull_is_a_fixed_number_of_queries(sync):
    Project.objects.create(id="P", name="p")
    Task.objects.bulk_create([Task(name=f"t{i}", project_id="P") for i in range(5)])
    sync.pull("taskUpdates")  # the first request logs the demo user in
    few = count_queries(lambda: sync.pull("taskUpdates"))
    Task.objects.bulk_create([Task(name=f"t{i}", project_id="P") for i in range(500)])
    Task.objects.filter(name="t1").delete()
    many = count_queries(lambda: sync.pull("taskUpdates"))
    assert many == few


def test_a_push_is_a_fixed_number_of_queries(sync):
    # 90 rows of Task's 10 columns fit in one INSERT on every backend (SQLite
    # allows 999 parameters).
    Project.objects.create(id="P", name="p")
    sync.push("taskUpdates", [])  # the model's first write creates its clock row
    few_new = count_queries(push_tasks(sync, 3, "a"))
    many_new = count_queries(push_tasks(sync, 90, "b"))
    assert many_new == few_new
    # Updates of existing objects, and removals, are set-based too.
    few_updates = count_queries(lambda: sync.push("taskUpdates", [
        {"id": f"a{i}", "done": True} for i in range(3)] + [{"id": "b0", "_removed": True}]))
    many_updates = count_queries(lambda: sync.push("taskUpdates", [
        {"id": f"b{i}", "done": True} for i in range(1, 90)] + [
        {"id": f"b{i}", "_removed": True} for i in range(60, 90)]))
    assert many_updates <= few_updates + 2  # the deletion collector's fixed extra queries

import heapq


def build_order(dependencies):
    needs = {task: set(deps) for task, deps in dependencies.items()}
    for deps in dependencies.values():
        for dep in deps:
            needs.setdefault(dep, set())
    ready = [task for task, deps in needs.items() if not deps]
    heapq.heapify(ready)
    order = []
    while ready:
        task = heapq.heappop(ready)
        order.append(task)
        for other, deps in needs.items():
            if task in deps:
                deps.discard(task)
                if not deps:
                    heapq.heappush(ready, other)
    if len(order) != len(needs):
        raise ValueError("cycle")
    return order

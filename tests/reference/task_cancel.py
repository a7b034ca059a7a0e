# Task.cancel(): the task sees CancelledError at its next await, may clean up with awaits
# and finish, or let it through and end cancelled.
import asyncio


async def cleaner(log):
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        log.append("cleaner: cancelled, cleaning up")
        await asyncio.sleep(1)
        log.append("cleaner: clean")
        return "cleaned"


async def plain():
    await asyncio.sleep(10)
    return "never"


async def reraiser(log):
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        log.append("reraiser: saw it, raising again")
        raise


async def waiter(lock, log):
    try:
        async with lock:
            log.append("waiter: took the lock")
    except asyncio.CancelledError:
        log.append("waiter: cancelled while waiting for the lock")
        raise


async def inner(log):
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        log.append("inner: cancelled")
        raise


async def outer(log):
    child = asyncio.create_task(inner(log))
    try:
        await child
    except asyncio.CancelledError:
        log.append(f"outer: cancelled, child cancelled = {child.cancelled()}")
        raise


async def swallower(log):
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        log.append("swallower: swallowed")
    return 7


async def parent_of_swallower(log):
    child = asyncio.create_task(swallower(log))
    value = await child
    log.append(f"parent: child returned {value}")
    return value


async def on_future(fut, log):
    try:
        await fut
    except asyncio.CancelledError:
        log.append(f"on_future: cancelled, future cancelled = {fut.cancelled()}")
        raise


async def main():
    log = []
    loop = asyncio.get_running_loop()

    t = asyncio.create_task(cleaner(log))
    await asyncio.sleep(0)
    print("cancel returns", t.cancel())
    print("result:", await t, "| cancelled:", t.cancelled())
    for line in log: print(line)
    log.clear()

    t = asyncio.create_task(plain())
    await asyncio.sleep(0)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        print("plain: cancelled =", t.cancelled())

    t = asyncio.create_task(plain())
    t.cancel()  # before it ever ran
    try:
        await t
    except asyncio.CancelledError:
        print("unstarted: cancelled =", t.cancelled())

    t = asyncio.create_task(reraiser(log))
    await asyncio.sleep(0)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        print("reraiser: cancelled =", t.cancelled())
    for line in log: print(line)
    log.clear()

    lock = asyncio.Lock()
    await lock.acquire()
    t = asyncio.create_task(waiter(lock, log))
    await asyncio.sleep(0)
    t.cancel()
    await asyncio.sleep(0)
    lock.release()
    try:
        await t
    except asyncio.CancelledError:
        print("waiter: cancelled =", t.cancelled(), "| lock locked =", lock.locked())
    for line in log: print(line)
    log.clear()

    t = asyncio.create_task(outer(log))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        print("outer: cancelled =", t.cancelled())
    for line in log: print(line)
    log.clear()

    t = asyncio.create_task(parent_of_swallower(log))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    t.cancel()
    print("parent result:", await t, "| cancelled:", t.cancelled())
    for line in log: print(line)
    log.clear()

    fut = loop.create_future()
    t = asyncio.create_task(on_future(fut, log))
    await asyncio.sleep(0)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        print("on_future: task cancelled =", t.cancelled())
    for line in log: print(line)
    log.clear()

    t = asyncio.create_task(plain())
    await asyncio.sleep(0)
    t.cancel()
    await asyncio.sleep(0)
    print("cancel after done returns", t.cancel())


asyncio.run(main())

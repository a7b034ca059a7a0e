# A lock goes to its waiters in the order they asked, even to one that asks later than a
# newcomer; a cancelled waiter never gets it.
import asyncio


async def worker(lock, name):
    print(f"{name}: wants the lock")
    async with lock:
        print(f"{name}: has the lock")
        await asyncio.sleep(0)
        print(f"{name}: releases")


async def main():
    lock = asyncio.Lock()
    await lock.acquire()
    print("main: has the lock, locked =", lock.locked())
    tasks = [asyncio.create_task(worker(lock, name)) for name in "abc"]
    await asyncio.sleep(0)
    tasks[1].cancel()
    lock.release()
    print("main: released, locked =", lock.locked())
    late = asyncio.create_task(worker(lock, "late"))
    print("main: wants it back")
    async with lock:
        print("main: has it back")
    for task in tasks + [late]:
        try:
            await task
        except asyncio.CancelledError:
            print("b: cancelled")
    print("main: locked =", lock.locked())


asyncio.run(main())

# A cancelled task is done only once its finally block has run.
import asyncio


async def worker():
    try:
        await asyncio.sleep(10)
    finally:
        print("worker: finally runs")


async def main():
    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    task.cancel()
    print("after cancel: done =", task.done())
    try:
        await task
    except asyncio.CancelledError:
        print("awaited: cancelled")
    print("after await: done =", task.done())


asyncio.run(main())

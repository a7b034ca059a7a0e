# A TaskGroup waits for all its tasks; the first to fail cancels the others, which finish
# cancelling before the group raises.
import asyncio


async def job(name, delay, fail=False):
    print(f"{name} starts")
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        print(f"{name} cancelled")
        raise
    if fail:
        print(f"{name} fails")
        raise ValueError(name)
    print(f"{name} ends")
    return name


async def main():
    async with asyncio.TaskGroup() as group:
        a = group.create_task(job("a", 0.02))
        b = group.create_task(job("b", 0.01))
    print("results:", a.result(), b.result())
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(job("c", 0.01, fail=True))
            group.create_task(job("d", 1))
            group.create_task(job("e", 0.005))
    except* ValueError as failed:
        print("failed:", [str(error) for error in failed.exceptions])


asyncio.run(main())

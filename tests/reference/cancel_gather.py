# Cancelling a task that awaits a gather or a TaskGroup cancels the members, waits for them,
# and ends the task cancelled even if the members swallowed theirs; a shield keeps its task.
import asyncio


async def member(name, seen):
    try:
        await asyncio.sleep(9)
    except asyncio.CancelledError:
        seen.append(name)
    return name


async def main():
    seen = []

    async def parent():
        return await asyncio.gather(member("a", seen), member("b", seen))

    t = asyncio.create_task(parent())
    await asyncio.sleep(1)
    t.cancel()
    try:
        print("gather result", await t)
    except asyncio.CancelledError:
        print("gather parent cancelled:", t.cancelled(), "| members saw it:", seen)

    seen = []

    async def group():
        async with asyncio.TaskGroup() as g:
            g.create_task(member("c", seen))
            g.create_task(member("d", seen))
        return "group done"

    t = asyncio.create_task(group())
    await asyncio.sleep(1)
    t.cancel()
    try:
        print("group result", await t)
    except asyncio.CancelledError:
        print("group parent cancelled:", t.cancelled(), "| members saw it:", seen)

    saved = []

    async def saver():
        await asyncio.sleep(2)
        saved.append(True)

    async def awaiter():
        await asyncio.shield(saver())

    t = asyncio.create_task(awaiter())
    await asyncio.sleep(1)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        print("shield awaiter cancelled:", t.cancelled(), "| saved yet:", bool(saved))
    await asyncio.sleep(2)
    print("saved after:", bool(saved))


asyncio.run(main())

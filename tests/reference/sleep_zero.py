# asyncio.sleep(0) is a bare yield: the task goes behind what is already queued, not behind
# what is queued later in the same iteration.
import asyncio

loop = asyncio.new_event_loop()


async def main():
    await asyncio.sleep(0)
    print("main: resumed after sleep(0)")


def outer():
    loop.call_soon(lambda: print("callback queued after main yielded"))


task = loop.create_task(main())
loop.call_soon(outer)
loop.run_until_complete(task)
loop.close()

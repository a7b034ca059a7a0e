# An event wakes every waiter, in the order they waited; once set, waits return at once.
import asyncio


async def waiter(event, name):
    print(f"{name}: waits")
    await event.wait()
    print(f"{name}: woke")


async def main():
    event = asyncio.Event()
    tasks = [asyncio.create_task(waiter(event, name)) for name in "abc"]
    await asyncio.sleep(0)
    print("main: set")
    event.set()
    print("main: is_set =", event.is_set())
    await asyncio.gather(*tasks)
    await waiter(event, "d")
    event.clear()
    print("main: cleared, is_set =", event.is_set())
    task = asyncio.create_task(waiter(event, "e"))
    await asyncio.sleep(0.01)
    event.set()
    await task


asyncio.run(main())

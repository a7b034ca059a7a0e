# notify(1) wakes the oldest waiter, notify_all the rest; each takes the lock in turn;
# wait_for checks its predicate first and after every wakeup.
import asyncio


async def consumer(condition, state, name):
    async with condition:
        print(f"{name}: waits")
        await condition.wait()
        print(f"{name}: woke, items = {state['items']}")


async def main():
    condition = asyncio.Condition()
    state = {"items": 0}
    tasks = [asyncio.create_task(consumer(condition, state, name)) for name in "abc"]
    await asyncio.sleep(0)
    async with condition:
        state["items"] = 1
        print("main: notify 1")
        condition.notify(1)
    await asyncio.sleep(0)
    async with condition:
        state["items"] = 2
        print("main: notify all")
        condition.notify_all()
    await asyncio.gather(*tasks)

    async def until_three():
        async with condition:
            await condition.wait_for(lambda: state["items"] >= 3)
            print("until_three: items =", state["items"])

    task = asyncio.create_task(until_three())
    for _ in range(2):
        await asyncio.sleep(0)
        async with condition:
            state["items"] += 1
            print("main: items =", state["items"])
            condition.notify_all()
    await task


asyncio.run(main())

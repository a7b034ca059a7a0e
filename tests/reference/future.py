# A future awaited by two tasks, with a done callback: the callback and the wakeups run in
# the order they were added; setting twice is InvalidStateError; a cancelled future gives
# CancelledError to its waiters and to result(); a callback added when done runs soon.
import asyncio


async def waiter(fut, name):
    print(f"{name}: waits")
    try:
        print(f"{name}: got", await fut)
    except asyncio.CancelledError:
        print(f"{name}: cancelled")


async def main():
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    fut.add_done_callback(lambda f: print("early callback: result =", f.result()))
    tasks = [asyncio.create_task(waiter(fut, name)) for name in "ab"]
    await asyncio.sleep(0)
    fut.add_done_callback(lambda f: print("callback: result =", f.result()))
    print("main: done =", fut.done())
    fut.set_result(42)
    print("main: set, done =", fut.done())
    try:
        fut.set_result(43)
    except asyncio.InvalidStateError:
        print("main: set twice: InvalidStateError")
    for task in tasks:
        await task
    print("main: result =", fut.result())
    other = loop.create_future()
    task = asyncio.create_task(waiter(other, "c"))
    await asyncio.sleep(0)
    print("main: cancel =", other.cancel())
    print("main: cancel again =", other.cancel())
    await task
    print("main: cancelled =", other.cancelled())
    try:
        other.result()
    except asyncio.CancelledError:
        print("main: result: CancelledError")
    late = loop.create_future()
    late.set_result("x")
    late.add_done_callback(lambda f: print("late callback:", f.result()))
    print("main: added late callback")
    await asyncio.sleep(0)
    print("main: end")


asyncio.run(main())

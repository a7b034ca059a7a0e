# With an exception handler set, a callback that raises is reported to it and the loop goes
# on: the callbacks after it run; call_exception_handler reaches the same handler.
import asyncio


def handler(loop, context):
    exception = context.get("exception")
    print("handler:", exception if exception is not None else context["message"])


def boom():
    raise RuntimeError("boom")


def after(n):
    print("callback", n, "runs")


async def main():
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(handler)
    loop.call_soon(after, 1)
    loop.call_soon(boom)
    loop.call_soon(after, 2)
    await asyncio.sleep(0.1)
    loop.call_exception_handler({"message": "disk nearly full"})
    print("the loop went on")


asyncio.run(main())

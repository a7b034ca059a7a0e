# gather schedules its members when it is called, so a gather of gathers runs them in the
# order the inner gathers were made; wait_for on a gather cancels every member.
import asyncio


async def job(name, delay):
    print(f"{name} starts")
    await asyncio.sleep(delay)
    print(f"{name} ends")
    return name


async def main():
    first = asyncio.gather(job("a", 0.02), job("b", 0.01))
    second = asyncio.gather(job("c", 0.01), job("d", 0))
    print("main: both gathers made")
    await asyncio.sleep(0)
    print("main: gathering them")
    print("gathered:", await asyncio.gather(first, second))
    try:
        await asyncio.wait_for(asyncio.gather(job("e", 0.05), job("f", 1)), timeout=0.1)
    except asyncio.TimeoutError:
        print("timed out")
    await asyncio.sleep(2)
    print("f never ended")


asyncio.run(main())

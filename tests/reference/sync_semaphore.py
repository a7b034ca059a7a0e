# A semaphore of 2 lets two workers in at a time, in the order they came; a bounded one
# refuses a release it did not give; a waiter cancelled after it was handed a permit gives
# the permit on.
import asyncio


async def worker(semaphore, name):
    async with semaphore:
        print(f"{name}: in, value = {semaphore._value}")
        await asyncio.sleep(0.01)
        print(f"{name}: out")


async def main():
    semaphore = asyncio.Semaphore(2)
    await asyncio.gather(*(worker(semaphore, name) for name in "abcde"))
    print("value =", semaphore._value, "locked =", semaphore.locked())

    bounded = asyncio.BoundedSemaphore(1)
    try:
        bounded.release()
    except ValueError as error:
        print("bounded:", error)

    single = asyncio.Semaphore(1)
    await single.acquire()
    first = asyncio.create_task(worker(single, "first"))
    second = asyncio.create_task(worker(single, "second"))
    await asyncio.sleep(0)
    single.release()  # hands the permit to first, which has not run yet
    first.cancel()
    try:
        await first
    except asyncio.CancelledError:
        print("first: cancelled")
    await second
    print("single: value =", single._value)


asyncio.run(main())

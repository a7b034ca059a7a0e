# A bounded queue: the producer waits while it is full, consumers take items in order;
# join waits for task_done of every item; the three orders; the nowait errors.
import asyncio


async def producer(queue):
    for item in range(5):
        await queue.put(item)
        print(f"put {item}, qsize = {queue.qsize()}")
    print("producer: done")


async def consumer(queue, name):
    while True:
        item = await queue.get()
        print(f"{name}: got {item}")
        await asyncio.sleep(0)
        queue.task_done()


async def main():
    queue = asyncio.Queue(maxsize=2)
    consumers = [asyncio.create_task(consumer(queue, name)) for name in "ab"]
    await producer(queue)
    await queue.join()
    print("joined, empty =", queue.empty())
    for task in consumers:
        task.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)

    # A getter woken for an item but cancelled before it ran passes the item on.
    handoff = asyncio.Queue()
    getters = [asyncio.create_task(handoff.get()) for _ in range(2)]
    await asyncio.sleep(0)
    handoff.put_nowait("item")
    getters[0].cancel()
    print("second getter got:", await getters[1])
    print("first cancelled:", getters[0].cancelled())

    small = asyncio.Queue(maxsize=1)
    small.put_nowait("x")
    print("full =", small.full())
    try:
        small.put_nowait("y")
    except asyncio.QueueFull:
        print("QueueFull")
    print("get_nowait:", small.get_nowait())
    try:
        small.get_nowait()
    except asyncio.QueueEmpty:
        print("QueueEmpty")
    try:
        small.task_done()
        small.task_done()
    except ValueError as error:
        print("ValueError:", error)

    lifo, priority = asyncio.LifoQueue(), asyncio.PriorityQueue()
    for item in [3, 1, 2]:
        lifo.put_nowait(item)
        priority.put_nowait(item)
    print("lifo:", [lifo.get_nowait() for _ in range(3)])
    print("priority:", [priority.get_nowait() for _ in range(3)])


asyncio.run(main())

# gather's two modes (fail fast, the others running on; return_exceptions), wait's three
# return_when and its timeout, and as_completed's completion order.
import asyncio


async def job(name, delay, fail=False):
    await asyncio.sleep(delay)
    if fail:
        print(f"{name} fails")
        raise ValueError(name)
    print(f"{name} ends")
    return name


async def main():
    try:
        await asyncio.gather(job("a", 0.3), job("b", 0.1, fail=True), job("c", 0.2))
    except ValueError:
        print("gather failed fast")
    await asyncio.sleep(0.5)
    results = await asyncio.gather(job("d", 0.2), job("e", 0.1, fail=True), return_exceptions=True)
    print("return_exceptions:", [r if isinstance(r, str) else "error" for r in results])

    tasks = [asyncio.create_task(job(n, d)) for n, d in [("f", 0.3), ("g", 0.1), ("h", 0.2)]]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    print("first completed:", sorted(t.result() for t in done), "| pending:", len(pending))
    done, pending = await asyncio.wait(pending, timeout=0.15)
    print("timeout: done", sorted(t.result() for t in done), "| pending:", len(pending))
    done, pending = await asyncio.wait(pending)
    print("all completed:", sorted(t.result() for t in done), "| pending:", len(pending))

    specs = [("i", 0.1, False), ("j", 0.2, True), ("k", 0.3, False)]
    tasks = [asyncio.create_task(job(n, d, fail)) for n, d, fail in specs]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    print("first exception: done", len(done), "| pending:", len(pending))
    await asyncio.wait(pending)

    order = []
    for next_done in asyncio.as_completed([job("l", 0.3), job("m", 0.1), job("n", 0.2)]):
        order.append(await next_done)
    print("as_completed:", order)


asyncio.run(main())

# A barrier of 3 releases its parties together, twice; an abort breaks it for everyone.
import asyncio


async def party(barrier, name, rounds):
    for round in range(rounds):
        print(f"{name}: waits in round {round}")
        index = await barrier.wait()
        print(f"{name}: passes round {round} as {index}")


async def main():
    barrier = asyncio.Barrier(3)
    await asyncio.gather(*(party(barrier, name, 2) for name in "abc"))
    print("n_waiting =", barrier.n_waiting, "broken =", barrier.broken)

    async def doomed(name):
        try:
            await barrier.wait()
        except asyncio.BrokenBarrierError:
            print(f"{name}: broken")

    tasks = [asyncio.create_task(doomed(name)) for name in "xy"]
    await asyncio.sleep(0)
    print("n_waiting =", barrier.n_waiting)
    await barrier.abort()
    await asyncio.gather(*tasks)
    await doomed("z")
    print("broken =", barrier.broken)


asyncio.run(main())

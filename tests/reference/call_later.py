import asyncio


loop = asyncio.get_event_loop()


def hello_world():
    loop.call_later(1, hello_world)
    print("Hello world!")


loop = asyncio.get_event_loop()
loop.call_later(1, hello_world)
# Bounded for the reference: stop after five ticks (the notes' program runs forever).
loop.call_later(5.5, loop.stop)
loop.run_forever()

# Callbacks due at the same instant run in the order they were scheduled.
import asyncio

loop = asyncio.new_event_loop()
for name in ["a", "b", "c", "d"]:
    loop.call_later(0.5, print, name)
loop.call_later(0.5, loop.stop)
loop.run_forever()
loop.close()

# A TimerHandle cancelled after it fell due but before its callback ran: asyncio skips it.
import asyncio

loop = asyncio.new_event_loop()
handles = {}


def first():
    print("first: cancelling second")
    handles["second"].cancel()


def second():
    print("second ran")


handles["first"] = loop.call_later(0.001, first)
handles["second"] = loop.call_later(0.001, second)
loop.call_later(0.002, loop.stop)
loop.run_forever()
print("second cancelled:", handles["second"].cancelled())
loop.close()

"""Benchmark app (bench/handlers.mjs): emit back, async and plain."""
from frappe.realtime import realtime


@realtime.on("rt_async")
async def rt_async(socket, x):
    await socket.emit("rt_back", x)


@realtime.on("rt_plain")
def rt_plain(socket, x):
    socket.emit("rt_back", x)

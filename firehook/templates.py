"""Files that ``firehook init`` writes."""

HELLO_WORLD = '''\
"""Say hello: firehook invoke helloWorld --data '{"name": "allen"}'"""


def main(event):
    name = (event.data or {}).get("name", "world")
    return f"hello {name}"
'''

CONFIG = """\
# firehook config file: apply it with `firehook apply firehook.yaml`
# (or start everything with `firehook serve --config firehook.yaml`).
# To use an example, uncomment it and drop the `{}` or `[]` after its section's name.
version: 1

# Per-function options (timeout, retries, who may invoke).
functions: {}
#  helloWorld: {timeout: 5s, retry: {attempts: 3, backoff: 10s}}

# Data-change triggers: run a function when an event matches.
triggers: []
#  - name: cancel-unpaid-orders
#    on: {table: orders, events: [on_create]}
#    when: {all: [{field: status, op: "=", value: unpaid}]}
#    invoke: cancelUnpaidOrder
#    delay: 30m

# Cron schedules.
schedules: []
#  - name: nightly-lottery
#    cron: "0 20 * * *"
#    timezone: Asia/Shanghai
#    invoke: drawLottery
"""

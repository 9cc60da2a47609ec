"""Say hello: firehook invoke helloWorld --data '{"name": "allen"}'"""


def main(event):
    name = (event.data or {}).get("name", "world")
    return f"hello {name}"

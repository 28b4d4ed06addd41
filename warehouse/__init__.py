"""The citycam warehouse: migrations, the Kafka sink and the embedded ClickHouse HTTP endpoint.

Heavy modules (chDB, the sink's Kafka client) are imported by the submodules that need them,
never here, so `import warehouse` stays cheap.
"""

"""Open data: exports of the `open_data` views for citizens, researchers and agencies.

`citycam export` (command.py) reads one UTC day or hour through the open-data user, validates
it (validate.py: great-expectations suites in warehouse/expectations/open_data/, and the
personal-data check of privacy.py), writes CSV and Parquet per dataset (tables.py), the cameras
as GeoJSON (geo.py), the traffic flow as NGSI-LD (ngsi_ld.py), a DCAT-AP catalog (catalog.py)
and the portal page (portal.py), and publishes it atomically (publish.py). export.py ties them
together; datasets.py says what is published.
"""

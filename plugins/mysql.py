"""`ceo mysql`: MySQL (MariaDB) databases for members and clubs (see plugins/_databases.py).

A user NAME@'%' with every privilege on the database NAME and none elsewhere.
"""

from ceo.plugin import Plugin

from ._databases import Engine, declare

plugin = declare(Plugin("mysql", "MySQL (MariaDB) databases for members and clubs: create, pwreset, delete, list"),
                 Engine("mysql", "MySQL", service="mariadb", port=3306,
                        client="mysql -h {host} -P {port} -u {name} -p {name}"))

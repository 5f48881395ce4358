"""A secret-bearing file for the plan tests; its token comes from KEEL_TEST_TOKEN."""

import os

from pyinfra.api import deploy

from keel.ops import secret_put


@deploy("secretfile")
def apply():
    secret_put(name="Write the test service's credentials", dest="/etc/keel-test/app.env",
               content=("# managed by keel\nUSER=app\n"
                        f"TOKEN={os.environ['KEEL_TEST_TOKEN']}\nPORT=8080\n"))


apply()

from singlewindow.card_gateway.app import app, settings
from singlewindow.runtime.service import run

run(app, settings)

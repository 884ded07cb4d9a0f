from singlewindow.card_gateway.app import app, settings
from singlewindow.shared.service import run

run(app, settings)

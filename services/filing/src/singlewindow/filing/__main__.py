from singlewindow.filing.app import app, settings
from singlewindow.runtime.service import run

run(app, settings)

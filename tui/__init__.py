"""The Textual dashboard over a serving Runtime (`tooldeck`, `tooldeck demo`)."""

"""kluis.cli"""

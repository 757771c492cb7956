"""kluis.api"""
